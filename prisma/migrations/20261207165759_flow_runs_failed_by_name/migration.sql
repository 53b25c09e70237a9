-- CreateIndex
CREATE INDEX "FlowRun_status_name_finishedAt_idx" ON "FlowRun"("status", "name", "finishedAt");
