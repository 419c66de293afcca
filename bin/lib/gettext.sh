# Sourced by bin/dev and bin/test: compiles the translations (locale/*/LC_MESSAGES/django.po -> .mo, which
# are not committed) with GNU gettext's msgfmt. A fresh machine may not have it: install Debian's gettext
# package when we can (root, apt). Without it bin/test stops; bin/dev serves in English and says so.
# Set AICOST_GETTEXT_REQUIRED=0 before sourcing to only warn.
if ! command -v msgfmt >/dev/null; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        echo "Installing Debian's gettext for the translations"
        DEBIAN_FRONTEND=noninteractive apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends gettext >/dev/null
    fi
fi
if command -v msgfmt >/dev/null; then
    # Only aicost's own catalogs: Django and the other packages in the venv ship compiled ones.
    python manage.py compilemessages -v0 --ignore=.venv --ignore="${AICOST_VENV:-.venv}" --ignore=staticfiles
elif [ "${AICOST_GETTEXT_REQUIRED:-1}" = 1 ]; then
    echo "$0: msgfmt (Debian's gettext package) is missing and cannot be installed here (needs root and apt-get)" >&2
    echo "$0: install gettext, then run again" >&2
    exit 2
else
    echo "$0: msgfmt (Debian's gettext package) is missing: pages are served in English only." >&2
fi
