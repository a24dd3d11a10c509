-- Back to transaction-start timestamps.
ALTER TABLE tenants ALTER COLUMN created_at SET DEFAULT now(),
                    ALTER COLUMN updated_at SET DEFAULT now();
ALTER TABLE users ALTER COLUMN created_at SET DEFAULT now(),
                  ALTER COLUMN updated_at SET DEFAULT now();
ALTER TABLE projects ALTER COLUMN created_at SET DEFAULT now(),
                     ALTER COLUMN updated_at SET DEFAULT now();
ALTER TABLE tasks ALTER COLUMN created_at SET DEFAULT now(),
                  ALTER COLUMN updated_at SET DEFAULT now();
ALTER TABLE comments ALTER COLUMN created_at SET DEFAULT now(),
                     ALTER COLUMN updated_at SET DEFAULT now();
