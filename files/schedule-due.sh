#!/bin/bash
# schedule-due UNIT: what a django-vps schedule timer starts (as root, from root's directory): the
# scheduled command's service UNIT, or, while its last run is still going, one line in the journal
# saying this run is skipped (systemd alone would skip it without a word). Installed by django-vps.
set -euo pipefail
unit=$1
case $(systemctl show -P ActiveState -- "$unit") in
    activating | active | deactivating | reloading)
        echo "skipped this run of $unit: the last run, started $(systemctl show -P ExecMainStartTimestamp -- "$unit"), is still going"
        ;;
    *) systemctl start --no-block -- "$unit" ;;
esac
