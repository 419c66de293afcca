# Sourced by bin/dev and bin/test: make .venv match requirements.txt, then put it first on PATH.
venv_dir="${AICOST_VENV:-.venv}"
python_bin="${PYTHON:-python3}"
if [ ! -x "$venv_dir/bin/python" ]; then
    echo "Creating $venv_dir with $($python_bin --version)"
    "$python_bin" -m venv "$venv_dir"
fi
wanted=$(sha256sum requirements.txt | cut -d' ' -f1)
if [ "$(cat "$venv_dir/.requirements.sha256" 2>/dev/null)" != "$wanted" ]; then
    echo "Installing requirements.txt into $venv_dir"
    "$venv_dir/bin/pip" install --quiet --disable-pip-version-check -r requirements.txt
    echo "$wanted" > "$venv_dir/.requirements.sha256"
fi
export PATH="$PWD/$venv_dir/bin:$PATH"
export VIRTUAL_ENV="$PWD/$venv_dir"
