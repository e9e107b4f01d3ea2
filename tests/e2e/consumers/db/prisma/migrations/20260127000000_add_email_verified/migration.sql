-- Source §9.3 step 1: the new column, nullable.
ALTER TABLE "users" ADD COLUMN "email_verified" BOOLEAN;
