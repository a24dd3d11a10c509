DROP TABLE IF EXISTS platform_idempotency_keys;
DROP TABLE IF EXISTS idempotency_keys;
