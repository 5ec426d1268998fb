/* Internal to lib/oci. */
#pragma once
#include "jumbo/oci.h"

/* "sha256:" and the lowercase hex of a 32-byte SHA-256. */
void oci_sha256_text(const unsigned char md[32], char out[JB_OCI_DIGEST_MAX]);
