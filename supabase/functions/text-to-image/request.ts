/**
 * The text-to-image request body and its validation.
 * @module
 */
import { HttpError } from "../_shared/http.ts";

/** A validated text-to-image request. */
export interface TextToImageRequest {
  prompt: string;
  parameters: {
    negative_prompt?: string;
    width?: number;
    height?: number;
    num_inference_steps?: number;
    guidance_scale?: number;
    seed?: number;
  };
}

/** The longest prompt accepted, in characters. */
export const MAX_PROMPT_LENGTH = 2000;

type FieldRule = (value: unknown) => string | undefined;

const integer = (min: number, max: number, step = 1): FieldRule => (v) =>
  typeof v !== "number" || !Number.isInteger(v) || v < min || v > max || v % step !== 0
    ? `must be an integer from ${min} to ${max}${step > 1 ? `, a multiple of ${step}` : ""}`
    : undefined;

const number = (min: number, max: number): FieldRule => (v) =>
  typeof v !== "number" || !Number.isFinite(v) || v < min || v > max
    ? `must be a number from ${min} to ${max}`
    : undefined;

const text = (required: boolean): FieldRule => (v) =>
  typeof v !== "string"
    ? "must be a string"
    : v.trim() === "" && required
    ? "must not be empty"
    : v.length > MAX_PROMPT_LENGTH
    ? `must be at most ${MAX_PROMPT_LENGTH} characters`
    : undefined;

// Optional parameters, forwarded to Hugging Face under `parameters` as they are.
const PARAMETER_RULES: Record<keyof TextToImageRequest["parameters"], FieldRule> = {
  negative_prompt: text(false),
  width: integer(64, 2048, 8),
  height: integer(64, 2048, 8),
  num_inference_steps: integer(1, 100),
  guidance_scale: number(0, 50),
  seed: integer(0, 2 ** 32 - 1),
};

/**
 * Validates a parsed JSON body.
 * @throws {HttpError} 400 whose JSON names the offending `field`.
 */
export function parseTextToImageRequest(body: unknown): TextToImageRequest {
  if (typeof body !== "object" || body === null || Array.isArray(body)) {
    throw new HttpError(400, "Request body must be a JSON object");
  }
  const fields = body as Record<string, unknown>;
  const invalid = (field: string, problem: string) => new HttpError(400, `${field} ${problem}`, { field });

  if (fields.prompt === undefined) throw invalid("prompt", "is required");
  const promptProblem = text(true)(fields.prompt);
  if (promptProblem) throw invalid("prompt", promptProblem);

  const parameters: Record<string, unknown> = {};
  for (const [field, value] of Object.entries(fields)) {
    if (field === "prompt" || value === undefined || value === null) continue;
    const rule = PARAMETER_RULES[field as keyof typeof PARAMETER_RULES];
    if (!rule) throw invalid(field, "is not a known field");
    const problem = rule(value);
    if (problem) throw invalid(field, problem);
    parameters[field] = value;
  }
  return { prompt: (fields.prompt as string).trim(), parameters };
}
