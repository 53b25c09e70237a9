/** Lifecycle of a flow run; the same names are stored in FlowRun.status. */
export const FlowStatus = {
  RUNNING: 'running',
  COMPLETED: 'completed',
  /** A step returned null: the pipeline stopped and returned what had accumulated. */
  HALTED: 'halted',
  FAILED: 'failed',
  /** A step failed after earlier steps changed Services, and every compensation succeeded. */
  COMPENSATED: 'compensated',
} as const;
export type FlowStatus = (typeof FlowStatus)[keyof typeof FlowStatus];

/** Lifecycle of one step; stored in FlowStep.status. */
export const StepStatus = {
  RUNNING: 'running',
  COMPLETED: 'completed',
  HALTED: 'halted',
  FAILED: 'failed',
  /** Failed, and the filter's policy is to continue without its output. */
  SKIPPED: 'skipped',
  /** Completed, then undone by its compensation after a later step failed. */
  COMPENSATED: 'compensated',
} as const;
export type StepStatus = (typeof StepStatus)[keyof typeof StepStatus];

export const FlowKind = { FILTER: 'filter', RECEIVER: 'receiver' } as const;
export type FlowKind = (typeof FlowKind)[keyof typeof FlowKind];

export const isFinished = (status: string) => status !== FlowStatus.RUNNING;
