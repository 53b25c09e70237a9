-- AlterTable
ALTER TABLE "FlowRun" ADD COLUMN     "traceContext" JSONB;

-- AlterTable
ALTER TABLE "OutboxSignal" ADD COLUMN     "traceContext" JSONB;
