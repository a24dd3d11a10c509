-- created_at / updated_at take the start time of the statement, not of the transaction
-- (now()): rows created by several mutations of one GraphQL operation (one transaction) keep
-- the order they were created in, and one INSERT still sets both columns to the same time.
ALTER TABLE tenants ALTER COLUMN created_at SET DEFAULT statement_timestamp(),
                    ALTER COLUMN updated_at SET DEFAULT statement_timestamp();
ALTER TABLE users ALTER COLUMN created_at SET DEFAULT statement_timestamp(),
                  ALTER COLUMN updated_at SET DEFAULT statement_timestamp();
ALTER TABLE projects ALTER COLUMN created_at SET DEFAULT statement_timestamp(),
                     ALTER COLUMN updated_at SET DEFAULT statement_timestamp();
ALTER TABLE tasks ALTER COLUMN created_at SET DEFAULT statement_timestamp(),
                  ALTER COLUMN updated_at SET DEFAULT statement_timestamp();
ALTER TABLE comments ALTER COLUMN created_at SET DEFAULT statement_timestamp(),
                     ALTER COLUMN updated_at SET DEFAULT statement_timestamp();
