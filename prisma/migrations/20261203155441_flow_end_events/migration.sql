-- AlterTable
ALTER TABLE "FlowRun" ADD COLUMN     "endPublishedAt" TIMESTAMP(3);

-- CreateIndex
CREATE INDEX "FlowRun_endPublishedAt_finishedAt_idx" ON "FlowRun"("endPublishedAt", "finishedAt");

-- The ends of flows that finished before this migration are not published again.
UPDATE "FlowRun" SET "endPublishedAt" = "finishedAt" WHERE "finishedAt" IS NOT NULL;
