-- AlterTable
ALTER TABLE "FlowStep" ADD COLUMN     "compensates" INTEGER;

-- CreateTable
CREATE TABLE "OperatorAction" (
    "id" UUID NOT NULL,
    "action" TEXT NOT NULL,
    "target" TEXT NOT NULL,
    "flowId" UUID,
    "signalId" UUID,
    "actor" JSONB NOT NULL,
    "reason" TEXT NOT NULL,
    "status" TEXT NOT NULL,
    "outcome" JSONB,
    "at" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "finishedAt" TIMESTAMP(3),

    CONSTRAINT "OperatorAction_pkey" PRIMARY KEY ("id")
);

-- CreateIndex
CREATE INDEX "OperatorAction_flowId_at_idx" ON "OperatorAction"("flowId", "at");

-- CreateIndex
CREATE INDEX "OperatorAction_at_idx" ON "OperatorAction"("at");

-- CreateIndex
CREATE INDEX "OutboxSignal_flowId_idx" ON "OutboxSignal"("flowId");
