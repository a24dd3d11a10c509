DROP TABLE IF EXISTS tenant_provisioning;
