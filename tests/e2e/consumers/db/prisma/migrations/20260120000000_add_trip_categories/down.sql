-- DropForeignKey
ALTER TABLE "trip_plans" DROP CONSTRAINT IF EXISTS "trip_plans_category_id_fkey";

-- DropIndex
DROP INDEX IF EXISTS "trip_plans_category_id_idx";

-- DropColumn
ALTER TABLE "trip_plans" DROP COLUMN IF EXISTS "category_id";

-- DropTable
DROP TABLE IF EXISTS "trip_categories";
