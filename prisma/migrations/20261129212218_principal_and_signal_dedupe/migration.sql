-- AlterTable
ALTER TABLE "FlowRun" ADD COLUMN     "principal" JSONB;

-- AlterTable
ALTER TABLE "OutboxSignal" ADD COLUMN     "dedupeKey" TEXT;

-- CreateIndex
CREATE UNIQUE INDEX "OutboxSignal_dedupeKey_key" ON "OutboxSignal"("dedupeKey");
