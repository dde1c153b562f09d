# shellcheck shell=bash
# Source this file to get the project's environment: every variable listed in
# .env.example gets its documented default unless it is already set (or set in .env).
_project_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if [ -f "$_project_root/.env" ]; then
    set -a
    # shellcheck disable=SC1091
    . "$_project_root/.env"
    set +a
fi
while IFS='=' read -r _name _value; do
    case "$_name" in
        ''|\#*) continue ;;
    esac
    if [ -z "${!_name+x}" ]; then
        export "$_name=$_value"
    else
        export "${_name?}"
    fi
done < "$_project_root/.env.example"
export PROJECT_ROOT="$_project_root"
unset _name _value _project_root
