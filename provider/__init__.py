"""twostep: two-step verification for Keycloak deployments, as an OpenID Connect provider."""
