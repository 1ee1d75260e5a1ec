"""The OpenID Connect provider: Authlib's authorization server wired to twostep's stores."""
