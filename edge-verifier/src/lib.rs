//! The edge verifier (a Cloudflare Worker over scanner-core) is not built yet; see README.md.
