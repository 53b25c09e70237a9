import { z } from 'zod';
import { readPluginEnv, type Env } from '@commerce-coordinator/plugin-sdk';

export type { Env };

const segmentSchema = z.object({
  /** The Segment source's write key (the reference's SEGMENT_KEY). */
  SEGMENT_WRITE_KEY: z.string().trim().min(1),
  /** Segment's tracking API host (another region, or a stand-in). @default https://api.segment.io */
  SEGMENT_HOST: z
    .url()
    .transform((url) => url.replace(/\/+$/, ''))
    .default('https://api.segment.io'),
  SEGMENT_TIMEOUT_MS: z.coerce.number().int().positive().default(10_000),
});

export type SegmentConfig = z.infer<typeof segmentSchema>;

export const segmentConfig = (env: Env): SegmentConfig =>
  readPluginEnv('analytics', segmentSchema, env, {
    SEGMENT_WRITE_KEY: 'the write key of the Segment source the Coordinator reports to',
  });
