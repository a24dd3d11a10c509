DROP TABLE IF EXISTS tenant_features;
