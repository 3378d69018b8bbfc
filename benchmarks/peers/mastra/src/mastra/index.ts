// The minimal Mastra server of the benchmark: one agent, no tools, no memory, on an
// OpenAI-compatible model whose base URL is the mock LLM server (MOCK_URL, read at start).
// `.chat(..)` makes the provider call chat completions (its default is the Responses API).
import { createOpenAI } from '@ai-sdk/openai';
import { Agent } from '@mastra/core/agent';
import { Mastra } from '@mastra/core/mastra';
import { PinoLogger } from '@mastra/loggers';

const openai = createOpenAI({
  baseURL: process.env.MOCK_URL ?? 'http://127.0.0.1:9999/v1',
  apiKey: 'bench',
});

export const bench = new Agent({
  id: 'bench',
  name: 'bench',
  instructions: 'You are a benchmark.',
  model: openai.chat('bench-model'),
});

export const mastra = new Mastra({
  agents: { bench },
  logger: new PinoLogger({ name: 'mastra', level: 'error' }),
  server: { host: '127.0.0.1', port: Number(process.env.PORT ?? 4111) },
});
