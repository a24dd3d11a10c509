"""Platform administrators: the principals who run Tenantry itself, belonging to no tenant."""
