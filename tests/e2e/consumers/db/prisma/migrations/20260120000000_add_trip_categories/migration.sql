-- Source §9.2: a new table and a nullable column (expand).
-- CreateTable
CREATE TABLE "trip_categories" (
    "id" UUID NOT NULL DEFAULT gen_random_uuid(),
    "name" VARCHAR(100) NOT NULL,
    "description" TEXT,
    "icon" VARCHAR(50),
    "created_at" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updated_at" TIMESTAMP(3) NOT NULL,

    CONSTRAINT "trip_categories_pkey" PRIMARY KEY ("id")
);

-- AddColumn (NULLable for backward compatibility)
ALTER TABLE "trip_plans" ADD COLUMN "category_id" UUID;

-- CreateIndex
CREATE INDEX "trip_plans_category_id_idx" ON "trip_plans"("category_id");

-- AddForeignKey
ALTER TABLE "trip_plans" ADD CONSTRAINT "trip_plans_category_id_fkey"
    FOREIGN KEY ("category_id") REFERENCES "trip_categories"("id")
    ON DELETE SET NULL ON UPDATE CASCADE;
