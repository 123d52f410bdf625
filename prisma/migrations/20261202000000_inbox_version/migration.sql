-- A per-user counter of changes to the set of conversations the user is in
-- (joined, left, removed), bumped in the transaction that makes the change.
-- Instances compare it with what they last saw for every user they hold live
-- subscriptions of (the position check, docs/architecture.md): a membership
-- event lost by the broker is noticed within the delivery bound.
ALTER TABLE "users" ADD COLUMN "inbox_version" INTEGER NOT NULL DEFAULT 0;
