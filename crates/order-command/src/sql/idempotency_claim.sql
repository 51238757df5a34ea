-- Claim a key: insert it, or take over an expired one. Returns a row only
-- when this request now owns the key. A concurrent claim of the same key
-- waits here until the other transaction commits or rolls back.
INSERT INTO idempotency_keys (principal, key, request_hash, expires_at)
VALUES ($1, $2, $3, now() + make_interval(secs => $4))
ON CONFLICT (principal, key) DO UPDATE
    SET request_hash  = EXCLUDED.request_hash,
        status        = NULL,
        response_body = NULL,
        location      = NULL,
        created_at    = now(),
        expires_at    = EXCLUDED.expires_at
    WHERE idempotency_keys.expires_at < now()
RETURNING true
