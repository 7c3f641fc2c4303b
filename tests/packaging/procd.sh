#!/bin/sh
# Stubs of OpenWrt's /lib/functions/procd.sh for tests/packaging.rs: each
# records its call (arguments in <>) to $STUB_RECORD instead of telling
# procd over ubus.

record() {
    line=$1
    shift
    for arg in "$@"; do
        line="$line <$arg>"
    done
    echo "$line" >> "$STUB_RECORD"
}

procd_open_service() { record procd_open_service "$@"; }
procd_close_service() { record procd_close_service "$@"; }
procd_open_instance() { record procd_open_instance "$@"; }
procd_close_instance() { record procd_close_instance "$@"; }
procd_set_param() { record procd_set_param "$@"; }
procd_append_param() { record procd_append_param "$@"; }
procd_kill() { record procd_kill "$@"; }

# procd.sh turns a signal name into its number with `kill -l` (an unknown
# name fails the call), and sends the number.
procd_send_signal() {
    signal=$3
    case "$signal" in
        [A-Z]*) signal=$(kill -l "$signal" 2>/dev/null) || return 1 ;;
    esac
    record procd_send_signal "$1" "$2" "$signal"
}
