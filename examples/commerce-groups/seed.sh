#!/usr/bin/env bash
# Seeds the commerce-groups demo tenant "shop" through the gRPC API, then
# prints a few CheckAccess answers and who the automation tool (Make) must
# contain. Needs grpcurl, and a server started with this example's schema:
#
#   authzd serve --schema examples/commerce-groups/schema.toml --listen 127.0.0.1:50062 --data "$(mktemp -d)"
#   AUTHZD_ADDR=127.0.0.1:50062 examples/commerce-groups/seed.sh
#
# Groups, roles and assignments are created with grpcurl; the users come
# from users.csv through `authzd import` (the binary in $AUTHZD_BIN, else
# `authzd` on the PATH, else `cargo run` in this repository).
# Running it again against the same store changes nothing and succeeds.
set -euo pipefail

ADDR="${AUTHZD_ADDR:-127.0.0.1:50062}"
T="${AUTHZD_TENANT:-shop}"
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

if [[ -n "${AUTHZD_BIN:-}" ]]; then
  AUTHZD=("$AUTHZD_BIN")
elif command -v authzd >/dev/null; then
  AUTHZD=(authzd)
else
  AUTHZD=(cargo run -q --manifest-path "$HERE/../../Cargo.toml" --)
fi

# call METHOD JSON: one unary call; prints nothing unless it fails.
# ALREADY_EXISTS is success: run again against the same store, the script
# finds what its first run created and leaves it as it is.
call() {
  local out
  if ! out=$(grpcurl -plaintext -d "$2" "$ADDR" "authzd.v1.$1" 2>&1); then
    grep -q "Code: AlreadyExists" <<<"$out" || { echo "$1 failed: $out" >&2; exit 1; }
  fi
}

# group ID TITLE
group() {
  call DirectoryService/CreateGroup "{\"tenant\":\"$T\",\"group\":{\"id\":\"$1\",\"title\":\"$2\"}}"
}

# check SUBJECT PERMISSION: prints one answer (at the tenant root).
check() {
  local answer
  answer=$(grpcurl -plaintext -emit-defaults -d \
    "{\"tenant\":\"$T\",\"subject\":\"$1\",\"permission\":\"$2\"}" \
    "$ADDR" authzd.v1.AccessService/CheckAccess | grep -o '"allowed": [a-z]*' | cut -d' ' -f2)
  printf '%-22s %-20s %s\n' "$1" "$2" "$answer"
}

# holders PERMISSION: the subject ids holding it at the root, one per line.
holders() {
  grpcurl -plaintext -d "{\"tenant\":\"$T\",\"permission\":\"$1\",\"page_size\":1000}" \
    "$ADDR" authzd.v1.AccessService/ListSubjectsWithPermission |
    grep -o '"subject": "[^"]*"' | cut -d'"' -f4
}

echo "seeding tenant $T at $ADDR"

# The four default groups, and one custom group.
group viewers "Viewer"
group editors "Editor"
group managers "Manager"
group admins "Admin"
group pricing_team "Pricing team"

# A custom role for the custom group: manage prices (and nothing on products).
call DirectoryService/CreateRole \
  "{\"tenant\":\"$T\",\"role\":{\"id\":\"price_manager\",\"title\":\"Price manager\",\"grants\":[{\"permission\":\"price:manage\"}]}}"

# Groups hold roles, at the tenant root.
call MembershipService/ManageMembership "{\"tenant\":\"$T\",\"operations\":[
  {\"assign_role\":{\"role\":\"viewer\",\"principal\":{\"group\":\"viewers\"}}},
  {\"assign_role\":{\"role\":\"editor\",\"principal\":{\"group\":\"editors\"}}},
  {\"assign_role\":{\"role\":\"manager\",\"principal\":{\"group\":\"managers\"}}},
  {\"assign_role\":{\"role\":\"admin\",\"principal\":{\"group\":\"admins\"}}},
  {\"assign_role\":{\"role\":\"price_manager\",\"principal\":{\"group\":\"pricing_team\"}}}
]}"

# The users, in bulk.
"${AUTHZD[@]}" import --target "$ADDR" --tenant "$T" "$HERE/users.csv"

echo
printf '%-22s %-20s %s\n' SUBJECT PERMISSION ALLOWED
check lucas@shop.example product:read         # Viewer
check lucas@shop.example product:edit
check emma@shop.example price:edit            # Editor: product:edit, price follows product
check liam@shop.example price:manage          # Editor + Pricing team
check liam@shop.example product:manage
check mia@shop.example make:owner             # Admin
check mia@shop.example make:app_developer     # not part of Admin
check sofia@shop.example product:read         # in Editor, but locked

echo
echo "the automation tool must contain (make:scenario_edit or make:app_developer):"
{ holders make:scenario_edit; holders make:app_developer; } | sort -u | sed 's/^/  /'
