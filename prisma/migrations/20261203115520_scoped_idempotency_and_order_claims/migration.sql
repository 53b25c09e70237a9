-- DropIndex
DROP INDEX "FlowRun_name_idempotencyKey_key";

-- AlterTable
ALTER TABLE "FlowRun" ADD COLUMN     "idempotencyScope" TEXT NOT NULL DEFAULT 'anonymous',
ADD COLUMN     "orderClaim" TEXT;

-- Keys recorded before were global: they now belong to the caller recorded with their flow.
UPDATE "FlowRun" SET "idempotencyScope" = ("principal"->>'kind') || ':' || ("principal"->>'subject')
WHERE "principal" IS NOT NULL;

-- CreateIndex
CREATE UNIQUE INDEX "FlowRun_orderClaim_key" ON "FlowRun"("orderClaim");

-- CreateIndex
CREATE UNIQUE INDEX "FlowRun_name_idempotencyScope_idempotencyKey_key" ON "FlowRun"("name", "idempotencyScope", "idempotencyKey");
