#!/usr/bin/env bash
# Seeds the workforce-dual demo tenant "retail" through the gRPC API, then
# prints a few CheckAccess answers. Needs grpcurl and a server started with
# this example's schema:
#
#   authzd serve --schema examples/workforce-dual/schema.toml --listen 127.0.0.1:50065 --data "$(mktemp -d)"
#   AUTHZD_ADDR=127.0.0.1:50065 examples/workforce-dual/seed.sh
#
# Running it again against the same store changes nothing and succeeds.
set -euo pipefail

ADDR="${AUTHZD_ADDR:-127.0.0.1:50065}"
T="${AUTHZD_TENANT:-retail}"

# call METHOD JSON: one unary call; prints nothing unless it fails.
# ALREADY_EXISTS is success: run again against the same store, the script
# finds what its first run created and leaves it as it is.
call() {
  local out
  if ! out=$(grpcurl -plaintext -d "$2" "$ADDR" "authzd.v1.$1" 2>&1); then
    grep -q "Code: AlreadyExists" <<<"$out" || { echo "$1 failed: $out" >&2; exit 1; }
  fi
}

# role ID TITLE CLASS GRANT...: a custom role (a staff category or a manager role).
role() {
  local id="$1" title="$2" class="$3"
  shift 3
  local grants="" g
  for g in "$@"; do
    grants+="${grants:+,}{\"permission\":\"$g\"}"
  done
  call DirectoryService/CreateRole \
    "{\"tenant\":\"$T\",\"role\":{\"id\":\"$id\",\"title\":\"$title\",\"class\":\"$class\",\"grants\":[$grants]}}"
}

# unit ID PARENT: a collaboration group (a scope of type "unit").
unit() {
  call DirectoryService/CreateScope \
    "{\"tenant\":\"$T\",\"scope\":{\"id\":\"$1\",\"type\":\"unit\",\"parent\":\"$2\"}}"
}

# person ID HOME_UNIT
person() {
  call DirectoryService/CreateSubject \
    "{\"tenant\":\"$T\",\"subject\":{\"id\":\"$1\",\"home_scope\":\"$2\"}}"
}

# assign ROLE SUBJECT [SCOPE]: as one operation of a ManageMembership batch.
assign() {
  local target=""
  [[ -n "${3:-}" ]] && target=",\"target\":{\"scope\":\"$3\"}"
  printf '{"assign_role":{"role":"%s","principal":{"subject":"%s"}%s}}' "$1" "$2" "$target"
}

# check SUBJECT PERMISSION [SCOPE] [TARGET_SUBJECT]: prints one answer.
check() {
  local answer
  answer=$(grpcurl -plaintext -emit-defaults -d \
    "{\"tenant\":\"$T\",\"subject\":\"$1\",\"permission\":\"$2\",\"scope\":\"${3:-}\",\"target_subject\":\"${4:-}\"}" \
    "$ADDR" authzd.v1.AccessService/CheckAccess | grep -o '"allowed": [a-z]*' | cut -d' ' -f2)
  local where="${3:-root}"
  [[ -n "${4:-}" ]] && where="submitter ${4}"
  printf '%-10s %-28s %-16s %s\n' "$1" "$2" "$where" "$answer"
}

echo "seeding tenant $T at $ADDR"

# Units: hq > north > store_12, store_13.
unit hq ""
unit north hq
unit store_12 north
unit store_13 north

# Staff categories: one per employee. Whatever they are configured with,
# the class masks widgets, distribution, content creation, reports and
# comment moderation.
role frontline "Frontline" staff_category flp:write forms:write events:read stories:read
role office "Office" staff_category flp:read forms:read stories:read events:read
role kitchen "Kitchen" staff_category flp:write

# Manager roles: any number per manager; the level is only a label.
role team_lead_l1 "Team lead (level 1)" manager_role \
  events:write stories:write distribution:write reports:read comments:moderate submissions:approve
role team_lead_l2 "Team lead (level 2)" manager_role \
  events:write stories:write distribution:write reports:read comments:moderate submissions:approve
role area_manager "Area manager (level 2)" manager_role reports:write widgets:write
role approver "Approver (level 1)" manager_role submissions:approve
role distributor "Distributor (level 1)" manager_role distribution:write

person ana store_12      # frontline employee, submits forms
person ben store_12      # frontline + team lead of store_12
person cleo north        # office + approver and area manager of north
person dan store_13      # frontline + approver of store_13
person root_admin hq     # office + tenant administrator

ops=(
  "$(assign frontline ana)"
  "$(assign frontline ben)"
  "$(assign team_lead_l1 ben store_12)"
  "$(assign office cleo)"
  "$(assign approver cleo north)"
  "$(assign area_manager cleo north)"
  "$(assign frontline dan)"
  "$(assign approver dan store_13)"
  "$(assign office root_admin)"
  "$(assign tenant_admin root_admin)"
)
call MembershipService/ManageMembership \
  "{\"tenant\":\"$T\",\"operations\":[$(IFS=,; echo "${ops[*]}")]}"

echo
printf '%-10s %-28s %-16s %s\n' SUBJECT PERMISSION AT ALLOWED
check ana flp:read                                  # frontline WRITE implies READ
check ana widgets:read                              # OFF for frontline
check ben events:write store_12                     # category READ + role WRITE: WRITE
check ben forms:create_and_distribute store_12      # flp + forms from the category, distribution from the role
check ana forms:create_and_distribute store_12      # no distribution:write
check ben submissions:approve "" ana                # same unit as the submitter
check cleo submissions:approve "" ana               # a unit higher up: no
check dan submissions:approve "" ana                # a sibling unit: no
