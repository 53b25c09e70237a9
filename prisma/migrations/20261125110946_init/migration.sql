-- CreateTable
CREATE TABLE "FlowRun" (
    "id" UUID NOT NULL,
    "kind" TEXT NOT NULL,
    "name" TEXT NOT NULL,
    "receiver" TEXT,
    "status" TEXT NOT NULL,
    "idempotencyKey" TEXT,
    "inputHash" TEXT NOT NULL,
    "signalId" UUID,
    "orderId" TEXT,
    "input" JSONB NOT NULL,
    "output" JSONB,
    "errorCode" TEXT,
    "errorMessage" TEXT,
    "failure" JSONB,
    "haltedAt" INTEGER,
    "owner" TEXT,
    "heartbeatAt" TIMESTAMP(3),
    "attempt" INTEGER NOT NULL DEFAULT 1,
    "startedAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "finishedAt" TIMESTAMP(3),

    CONSTRAINT "FlowRun_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "FlowStep" (
    "id" UUID NOT NULL,
    "flowId" UUID NOT NULL,
    "index" INTEGER NOT NULL,
    "action" TEXT NOT NULL,
    "status" TEXT NOT NULL,
    "input" JSONB NOT NULL,
    "output" JSONB,
    "implementation" TEXT,
    "flagDecisions" JSONB,
    "idempotencyKey" TEXT NOT NULL,
    "attempt" INTEGER NOT NULL DEFAULT 1,
    "errorCode" TEXT,
    "errorMessage" TEXT,
    "failure" JSONB,
    "startedAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "finishedAt" TIMESTAMP(3),

    CONSTRAINT "FlowStep_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "OutboxSignal" (
    "id" UUID NOT NULL,
    "name" TEXT NOT NULL,
    "payload" JSONB NOT NULL,
    "source" TEXT NOT NULL,
    "flowId" UUID,
    "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "publishedAt" TIMESTAMP(3),
    "publishAttempts" INTEGER NOT NULL DEFAULT 0,
    "lastError" TEXT,

    CONSTRAINT "OutboxSignal_pkey" PRIMARY KEY ("id")
);

-- CreateIndex
CREATE INDEX "FlowRun_orderId_startedAt_idx" ON "FlowRun"("orderId", "startedAt");

-- CreateIndex
CREATE INDEX "FlowRun_status_startedAt_idx" ON "FlowRun"("status", "startedAt");

-- CreateIndex
CREATE INDEX "FlowRun_startedAt_idx" ON "FlowRun"("startedAt");

-- CreateIndex
CREATE INDEX "FlowRun_status_heartbeatAt_idx" ON "FlowRun"("status", "heartbeatAt");

-- CreateIndex
CREATE UNIQUE INDEX "FlowRun_name_idempotencyKey_key" ON "FlowRun"("name", "idempotencyKey");

-- CreateIndex
CREATE UNIQUE INDEX "FlowRun_signalId_receiver_key" ON "FlowRun"("signalId", "receiver");

-- CreateIndex
CREATE UNIQUE INDEX "FlowStep_flowId_index_key" ON "FlowStep"("flowId", "index");

-- CreateIndex
CREATE INDEX "OutboxSignal_publishedAt_createdAt_idx" ON "OutboxSignal"("publishedAt", "createdAt");

-- AddForeignKey
ALTER TABLE "FlowStep" ADD CONSTRAINT "FlowStep_flowId_fkey" FOREIGN KEY ("flowId") REFERENCES "FlowRun"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "OutboxSignal" ADD CONSTRAINT "OutboxSignal_flowId_fkey" FOREIGN KEY ("flowId") REFERENCES "FlowRun"("id") ON DELETE SET NULL ON UPDATE CASCADE;
