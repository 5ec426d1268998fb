#!/bin/bash
# The documentation against the code: each man page renders without
# warnings; every option that jumbo --help, each 'jumbo COMMAND --help' and
# jumbod --help print is in the program's man page; every message type of
# include/jumbo/wire.h is in docs/PROTOCOL.md with its number; every key the
# configuration parser knows is in jumbo.conf(5); the site database's schema
# is the one docs/ARCHITECTURE.md gives.
. "$(dirname "$0")/lib.sh"
SRC=$(cd "$(dirname "$0")/../.." && pwd)
PROTO=$SRC/docs/PROTOCOL.md
WIRE_H=$SRC/include/jumbo/wire.h
CONFIG_C=$SRC/lib/base/config.c # and config_site.c, the [site] keys

# render PAGE: the page as plain ASCII text (no overstrikes), for searching
render() { LC_ALL=C MANWIDTH=100 man -l "$1" 2>/dev/null | sed $'s/.\b//g'; }
# help_options: the options a --help text on stdin mentions: the option
# column of option lines, and the usage synopses ("Usage: ...", ": jumbo CMD ...")
help_options() {
	awk '/^[ \t]+-/ { sub(/^[ \t]+/, ""); split($0, a, /  +/); print a[1]; next }
	     /Usage:/ || /:[ \t]+jumbo [a-z]+/ { print }' |
		grep -oE -- '(^|[][ |,])--?[A-Za-z][A-Za-z0-9-]*' | sed -E 's/^[][ |,]//' | sort -u
}
# words LIST: the number of words in LIST; oneline LIST: LIST on one line
words() { wc -w <<< "$1"; }
oneline() { printf '%s' "${1//$'\n'/ }"; }
# has_option TEXT OPT: OPT appears in TEXT as a whole token
has_option() { printf '%s\n' "$1" | grep -qE -- "(^|[^A-Za-z0-9-])$2([^A-Za-z0-9-]|\$)"; }
# check_options PAGE-NAME PAGE-TEXT WHAT HELP-TEXT
check_options() {
	local page=$1 text=$2 what=$3 help=$4 opts n=0 o
	opts=$(printf '%s\n' "$help" | help_options)
	for o in $opts; do
		n=$((n + 1))
		if has_option "$text" "$o"; then pass "$page documents $o ($what)"
		else fail "$page documents $o ($what)" "'$what' prints $o; $page does not mention it"; fi
	done
	ok "$([ "$n" -gt 0 ]; echo $?)" "'$what' prints options: $n"
}

# --- the man pages render without warnings ---
if ! command -v man >/dev/null; then
	echo "ok $((++_n)) # SKIP man is not installed (apt-get install man-db)"
	done_testing
fi
for p in jumbo.1 jumbod.8 jumbo.conf.5; do
	f=$SRC/man/$p
	if [ ! -f "$f" ]; then fail "man/$p exists"; continue; fi
	warn=$(LC_ALL=C MANWIDTH=80 man --warnings -l "$f" 2>&1 >/dev/null); rc=$?
	is "$rc:$warn" "0:" "man --warnings -l man/$p: no warnings"
	ok "$([ "$(render "$f" | wc -l)" -gt 40 ]; echo $?)" "man/$p renders to text"
done
is "$(sed -n "s/.*install_man(\(.*\)).*/\1/p" "$SRC/man/meson.build" | tr -d "' ")" \
	"jumbo.1,jumbod.8,jumbo.conf.5" "man/meson.build installs the three pages"

# --- every option in the programs' --help is in their man page ---
j1=$(render "$SRC/man/jumbo.1")
j8=$(render "$SRC/man/jumbod.8")
help=$("$JUMBO" --help); ok $? "jumbo --help exits 0"
check_options jumbo.1 "$j1" "jumbo --help" "$help"
cmds=$(printf '%s\n' "$help" | awk '/^Commands:/ { on = 1; next } on && NF == 0 { on = 0 } on { print $1 }')
ok "$([ "$(words "$cmds")" -ge 6 ]; echo $?)" "jumbo --help lists its commands: $(oneline "$cmds")"
for c in $cmds; do
	grep -qE "^\.SS \"jumbo $c( |\")" "$SRC/man/jumbo.1"; ok $? "jumbo.1 has a section for 'jumbo $c'"
	h=$("$JUMBO" "$c" --help); ok $? "jumbo $c --help exits 0"
	check_options jumbo.1 "$j1" "jumbo $c --help" "$h"
done
h=$("$JUMBOD" --help); ok $? "jumbod --help exits 0"
check_options jumbod.8 "$j8" "jumbod --help" "$h"

# --- every message type of wire.h is in PROTOCOL.md, with its number ---
types=$(sed -nE 's/^[[:space:]]*JB_MSG_([A-Z_]+) = ([0-9]+),?.*/\1=\2/p' "$WIRE_H")
ok "$([ "$(words "$types")" -ge 11 ]; echo $?)" "wire.h defines message types: $(oneline "$types")"
for t in $types; do
	name=${t%=*} num=${t#*=}
	grep -qE "^\| *$num *\| *\`?$name\`? *\|" "$PROTO"
	ok $? "PROTOCOL.md lists $name as type $num"
	grep -qE "^### $name \($num\)" "$PROTO"
	ok $? "PROTOCOL.md describes $name ($num) in its own section"
done
# the fixed-size data stream records: magic and length
for r in JOIN JOINED BLOCK; do
	magic=$(sed -nE "s/^#define JB_${r}_MAGIC 0x([0-9a-fA-F]+)u.*/\1/p" "$WIRE_H")
	len=$(sed -nE "s/^#define JB_${r}(_HDR)?_LEN ([0-9]+).*/\2/p" "$WIRE_H")
	grep -qiE "0x$magic\b" "$PROTO"; ok $? "PROTOCOL.md gives the $r magic 0x$magic"
	grep -qE "^### $r \(${len}[ -]byte" "$PROTO"; ok $? "PROTOCOL.md gives $r as $len bytes"
done
magic=$(sed -nE 's/^#define JB_WIRE_MAGIC 0x([0-9a-fA-F]+)u.*/\1/p' "$WIRE_H")
grep -qiE "0x$magic\b" "$PROTO"; ok $? "PROTOCOL.md gives the HELLO magic 0x$magic"

# --- every configuration key is in jumbo.conf(5) ---
c5=$(render "$SRC/man/jumbo.conf.5")
keys=$( { grep -ohE '(FN|STR)\("[a-z_-]+"' "$SRC"/lib/base/config*.c | sed -E 's/^(FN|STR)\("([^"]*)".*/\2/'
	echo type # [backend NAME] type, taken by backend_key
	# the keys each backend type declares (lib/sched: common_keys, *_keys)
	sed -n '/^static const char \*const [a-z]*_keys\[\]/,/;/p' "$SRC"/lib/sched/*.c | grep -oE '"[a-z-]+"' | tr -d '"'; } | sort -u)
ok "$([ "$(words "$keys")" -ge 40 ]; echo $?)" "config.c knows keys: $(oneline "$keys")"
for k in $keys; do
	printf '%s\n' "$c5" | grep -qE "^ +$k = "; ok $? "jumbo.conf.5 describes the key '$k'"
done

# --- the site database's schema is the one ARCHITECTURE.md gives ---
if command -v sqlite3 > /dev/null; then
	site_new docs
	"$JUMBO" --config "$T/docs/jumbo.conf" token list > /dev/null 2>&1 # opens (makes) STATE/site.db
	squash() { tr -d ' \n\t'; }
	actual=$(sqlite3 "$T/docs/state/site.db" .schema | squash)
	documented=$(awk '/^```sql$/ { on = 1; n++; next } /^```$/ { on = 0 } on && n == 1' "$SRC/docs/ARCHITECTURE.md" | squash)
	ok "$([ -n "$actual" ] && [ "$actual" = "$documented" ]; echo $?)" "sqlite3 STATE/site.db .schema is the schema ARCHITECTURE.md gives"
	[ "$actual" = "$documented" ] || diag "site.db:" "$(sqlite3 "$T/docs/state/site.db" .schema)"
fi
done_testing
