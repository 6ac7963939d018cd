/** latte-flow: LaTtE-Flow on a native engine. */
import { loadAddon, type NativeBackendInfo } from './native.js';
import { native } from './errors.js';
import { fileURLToPath } from 'node:url';

export { Engine, type EngineOptions, type BackendRequest, type AttentionOptions, type RopeOptions, type Conv2dOptions } from './engine.js';
export { Tensor, type HostArray } from './tensor.js';
export { Checkpoint, openCheckpoint, type TensorInfo } from './checkpoint.js';
export { TextTokenizer, TextStreamer } from './tokenizer.js';
export { decodeImage, imageToPixels, preprocessImage, smartResize, DEFAULT_IMAGE_LIMITS, type ImageLimits, type RgbImage, type PreprocessorConfig, type PixelValues } from './image.js';
export { renderChat, checkMessages, expandImagePads, imageTokenCount, STOP_TOKENS, type ChatMessage, type ChatPart } from './chat.js';
export { ChatTemplate, loadChatTemplate } from './chat-template.js';
export { Qwen2VL, MAX_PREPROCESSOR_PIXELS, type Qwen2VLLoadOptions, type WeightStorage } from './qwen2vl.js';
export { MAX_QUESTION_CHARS, DEFAULT_MAX_PROMPT_TOKENS, MAX_ANSWER_TOKENS, type AnswerOptions, type ImageInput } from './answer.js';
export { ropePositions, type RopeIndexConfig } from './positions.js';
export { LatteFlow, MAX_COUNT, MAX_PROMPT_CHARS, MAX_PROMPT_TOKENS, MAX_STEPS, type LatteFlowLoadOptions, type GenerateOptions, type GenerateProgress, type GeneratedImage } from './latte-flow.js';
export { GenerationStream, type GeneratorConfig } from './generator.js';
export { DcaeDecoder, latentToRgb } from './dcae.js';
export { eulerStep, heunStep, timeSchedule, shiftTime, groupOf, type StepFunction, type StepContext, type VelocityFn } from './sampler.js';
export { LatteError, type ErrorCode } from './errors.js';
export { readWorld, wordsOf, promptWarnings, imageWarnings, type ModelWorld } from './model-world.js';
export { createWorker, createQueueClient, type QueueWorker, type QueueWorkerOptions, type QueueClient, type QueueClientOptions } from './queue/index.js';
export { createServer, latteFlowPlugin, type ServeOptions, type LatteServer, type LatteFlowPluginOptions, type ServedModel, type ServeState } from './serve/index.js';
export type { DTypeName, MaskName, GeluName } from './native.js';

export type BackendInfo = NativeBackendInfo;

/** The directory of the shipped shapes-world model (K = 4), e.g. `LatteFlow.load(SHIPPED_MODEL)`; its VLM is `SHIPPED_MODEL/vlm`. */
export const SHIPPED_MODEL: string = fileURLToPath(new URL('../models/shapes', import.meta.url));

/** Compiled backends, whether CUDA is usable (and why not), and the CPU's features. */
export function getBackendInfo(): BackendInfo {
  return native(() => loadAddon().backendInfo());
}
