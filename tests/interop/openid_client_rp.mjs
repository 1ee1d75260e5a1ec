// A relying party built on openid-client v6 (panva's certified RP library), pointed at twostep by
// tests/test_interop_openid_client.py. It does what a Node.js application does: discovery,
// the authorization code flow with PKCE (S256), state and nonce, ID token validation (signature
// against jwks_uri, iss, aud, exp, nonce, and RFC 9207's iss response parameter), userinfo,
// and the refresh token grant.
//
// The test plays the user's browser. One JSON object per line on stdio:
//   stdout  {"authorization_url": "..."}        where the application sends the browser
//   stdin   {"callback_url": "..."}             where twostep sent the browser back
//   stdout  {"claims": {...}, "userinfo": {...}, "refreshed": {...}}   or   {"error": ..., "code": ...}
//
// Environment: ISSUER, CLIENT_ID, CLIENT_SECRET (absent: a public client), REDIRECT_URI.
import * as client from 'openid-client'
import { createInterface } from 'node:readline'

const { ISSUER, CLIENT_ID, CLIENT_SECRET, REDIRECT_URI } = process.env
const say = (message) => process.stdout.write(JSON.stringify(message) + '\n')

async function nextLine () {
  const lines = createInterface({ input: process.stdin })
  for await (const line of lines) {
    lines.close()
    return JSON.parse(line)
  }
  throw new Error('stdin closed before the callback URL came')
}

async function main () {
  // twostep serves the tests on http://127.0.0.1: openid-client accepts plain http only when told.
  const authentication = CLIENT_SECRET ? client.ClientSecretBasic(CLIENT_SECRET) : client.None()
  const config = await client.discovery(new URL(ISSUER), CLIENT_ID, undefined, authentication,
    { execute: [client.allowInsecureRequests] })

  const verifier = client.randomPKCECodeVerifier()
  const nonce = client.randomNonce()
  const state = client.randomState()
  say({
    authorization_url: client.buildAuthorizationUrl(config, {
      redirect_uri: REDIRECT_URI,
      scope: 'openid profile email offline_access',
      code_challenge: await client.calculatePKCECodeChallenge(verifier),
      code_challenge_method: 'S256',
      nonce,
      state
    }).href
  })

  const { callback_url: callbackUrl } = await nextLine()
  const tokens = await client.authorizationCodeGrant(config, new URL(callbackUrl), {
    pkceCodeVerifier: verifier, expectedNonce: nonce, expectedState: state, idTokenExpected: true
  })
  const claims = tokens.claims()
  const userinfo = await client.fetchUserInfo(config, tokens.access_token, claims.sub)

  const refreshed = await client.refreshTokenGrant(config, tokens.refresh_token)
  const refreshedUserinfo = await client.fetchUserInfo(config, refreshed.access_token, claims.sub)
  say({
    claims,
    userinfo,
    token_type: tokens.token_type,
    scope: tokens.scope,
    refreshed: {
      token_type: refreshed.token_type,
      access_token_changed: refreshed.access_token !== tokens.access_token,
      refresh_token_rotated: Boolean(refreshed.refresh_token) && refreshed.refresh_token !== tokens.refresh_token,
      claims: refreshed.id_token ? refreshed.claims() : null,
      userinfo: refreshedUserinfo
    }
  })
}

main().catch((error) => {
  say({ error: String(error && error.message), code: error && error.code, cause: String(error && error.cause) })
  process.exitCode = 1
})
