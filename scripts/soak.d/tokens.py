"""Bearer tokens for the soak's callers, minted by `orderctl token`.

The soak runs the APIs with authentication on, as every deployment does: a
random HS256 secret per run, a staff token for the catalogue and customers,
a service token for the order traffic (the role an upstream system calls
with). Minting goes through orderctl so the soak also proves the tool's
tokens are the ones the services accept.
"""

import secrets
import subprocess


def secret():
    """A fresh HS256 secret for one run (never written to the repository)."""
    return secrets.token_urlsafe(48)


def mint(bin_dir, env, role, subject, ttl="6h"):
    """An `Authorization` header for `role`/`subject`, signed with env's AUTH_HS256_SECRET."""
    p = subprocess.run([f"{bin_dir}/orderctl", "token", "--role", role, "--subject", subject, "--ttl", ttl],
                       env=env, capture_output=True, text=True, timeout=60)
    if p.returncode != 0:
        raise RuntimeError(f"orderctl token --role {role} failed: {p.stderr.strip()[-300:]}")
    return {"Authorization": f"Bearer {p.stdout.strip()}"}
