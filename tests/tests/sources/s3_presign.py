#!/usr/bin/env python3
"""Prints a presigned S3 GET URL (SigV4 query form, path-style), signed here with Python's
hmac and hashlib: an implementation independent of rescue-init's signer.

usage: s3_presign.py ENDPOINT BUCKET KEY REGION ACCESS_KEY_ID SECRET [EXPIRES_S]
"""
import datetime
import hashlib
import hmac
import sys
import urllib.parse


def enc(s, keep_slash=False):
    safe = "-_.~" + ("/" if keep_slash else "")
    return urllib.parse.quote(s, safe=safe)


def main():
    endpoint, bucket, key, region, key_id, secret = sys.argv[1:7]
    expires = sys.argv[7] if len(sys.argv) > 7 else "600"
    u = urllib.parse.urlsplit(endpoint)
    now = datetime.datetime.now(datetime.timezone.utc)
    amz_date = now.strftime("%Y%m%dT%H%M%SZ")
    date = amz_date[:8]
    scope = f"{date}/{region}/s3/aws4_request"
    path = f"{u.path.rstrip('/')}/{enc(bucket)}/{enc(key, keep_slash=True)}"
    query = {
        "X-Amz-Algorithm": "AWS4-HMAC-SHA256",
        "X-Amz-Credential": f"{key_id}/{scope}",
        "X-Amz-Date": amz_date,
        "X-Amz-Expires": expires,
        "X-Amz-SignedHeaders": "host",
    }
    canonical_query = "&".join(f"{enc(k)}={enc(v)}" for k, v in sorted(query.items()))
    canonical_request = "\n".join(
        ["GET", path, canonical_query, f"host:{u.netloc}\n", "host", "UNSIGNED-PAYLOAD"]
    )
    to_sign = "\n".join(
        [
            "AWS4-HMAC-SHA256",
            amz_date,
            scope,
            hashlib.sha256(canonical_request.encode()).hexdigest(),
        ]
    )

    def h(k, m):
        return hmac.new(k, m.encode(), hashlib.sha256).digest()

    k = h(("AWS4" + secret).encode(), date)
    k = h(k, region)
    k = h(k, "s3")
    k = h(k, "aws4_request")
    sig = hmac.new(k, to_sign.encode(), hashlib.sha256).hexdigest()
    print(f"{u.scheme}://{u.netloc}{path}?{canonical_query}&X-Amz-Signature={sig}")


if __name__ == "__main__":
    main()
