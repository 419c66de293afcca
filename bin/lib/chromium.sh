# Sourced by bin/test: the end-to-end tests drive Debian's Chromium headless (/usr/bin/chromium).
# A fresh machine does not have it: install it from Debian's packages when we can (root, apt).
if [ ! -x /usr/bin/chromium ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        echo "Installing Debian's chromium for the end-to-end tests"
        DEBIAN_FRONTEND=noninteractive apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null
    else
        echo "bin/test: /usr/bin/chromium is missing and cannot be installed here (needs root and apt-get)" >&2
        echo "bin/test: install Debian's chromium package, then run again" >&2
        exit 2
    fi
fi
