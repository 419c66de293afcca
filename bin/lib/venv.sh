# Sourced by bin/dev and bin/test with the requirement files they need, e.g.
#     source bin/lib/venv.sh requirements.txt requirements-test.txt
# Makes the venv (AICOST_VENV, default .venv; relative to the project or absolute) hold each file,
# then puts it first on PATH. Each file has its own stamp in the venv (the file's sha256): an unchanged
# file installs nothing, so a venv that bin/test filled satisfies bin/dev as it is.
venv_dir="${AICOST_VENV:-.venv}"
case "$venv_dir" in
    /*) ;;
    *) venv_dir="$PWD/$venv_dir" ;;
esac
python_bin="${PYTHON:-python3}"
if [ ! -x "$venv_dir/bin/python" ]; then
    echo "Creating $venv_dir with $($python_bin --version)"
    "$python_bin" -m venv "$venv_dir"
fi
for requirements in "$@"; do
    stamp="$venv_dir/.$requirements.sha256"
    wanted=$(sha256sum "$requirements" | cut -d' ' -f1)
    if [ "$(cat "$stamp" 2>/dev/null)" != "$wanted" ]; then
        echo "Installing $requirements into $venv_dir"
        "$venv_dir/bin/pip" install --quiet --disable-pip-version-check -r "$requirements"
        echo "$wanted" > "$stamp"
    fi
done
export PATH="$venv_dir/bin:$PATH"
export VIRTUAL_ENV="$venv_dir"
