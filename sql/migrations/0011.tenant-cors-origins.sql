-- Browser origins a tenant's admins allow to call the API on the tenant's own host
-- (updateTenantSettings corsOrigins; app/api/cors.py). The server checks and normalises each
-- entry (app/core/origins.py); these checks are the last line of defence: a bounded list of
-- http(s) origins without paths or wildcards, no NULL entries.
ALTER TABLE tenants
    ADD COLUMN cors_origins text[] NOT NULL DEFAULT '{}'
        CHECK (
            cardinality(cors_origins) <= 20
            AND array_position(cors_origins, NULL) IS NULL
            AND array_to_string(cors_origins, ' ') ~ '^(https?://[^\s/*?#@]+( |$))*$'
        );
