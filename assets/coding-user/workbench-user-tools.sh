# shellcheck shell=sh
# /etc/profile.d/workbench-user-tools.sh, installed by workbench-boot.
# Tools a user installs for themselves (pip install --user, npm install -g with ~/.npmrc's
# prefix) land in ~/.local/bin: put it on PATH in every shell, login or not (/etc/bashrc
# reads profile.d for non-login shells, such as VS Code's terminals).
case ":$PATH:" in
  *":$HOME/.local/bin:"*) ;;
  *) PATH="$HOME/.local/bin:$PATH" ;;
esac
