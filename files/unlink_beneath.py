"""Removes files that root once put in a directory inside another user's tree, without following a
link that user could have planted there (as root, `rm /home/app/bin/run.sh` follows /home/app/bin
if the user replaced it with a link to /etc). Installed by django-vps; run by root as

    python3 -I unlink_beneath.py BASE DIRECTORY NAME...

BASE is opened without following its last component (it sits in a root-owned directory, /home);
DIRECTORY is opened inside it the same way, and used only if it is still root's. Each NAME is then
unlinked inside it (unlinkat never follows the name), and DIRECTORY removed if that left it empty
and it is the same directory. Anything else is left as it is, with a line saying why.
"""

import os
import stat
import sys

OPEN_DIRECTORY = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def main() -> int:
    base, directory, names = sys.argv[1], sys.argv[2], sys.argv[3:]
    if "/" in directory or directory in (".", ".."):
        print(f"unlink_beneath: {directory!r} is not a name", file=sys.stderr)
        return 2
    try:
        base_fd = os.open(base, OPEN_DIRECTORY)
    except FileNotFoundError:
        return 0
    except OSError as error:
        print(f"unlink_beneath: {base} left alone: {error.strerror}")
        return 0
    try:
        try:
            fd = os.open(directory, OPEN_DIRECTORY, dir_fd=base_fd)
        except FileNotFoundError:
            return 0
        except OSError as error:  # ELOOP or ENOTDIR: a link or a file, not ours
            print(f"unlink_beneath: {base}/{directory} left alone: {error.strerror}")
            return 0
        try:
            info = os.fstat(fd)
            if info.st_uid != 0:
                print(f"unlink_beneath: {base}/{directory} left alone: it is not root's")
                return 0
            for name in names:
                try:
                    os.unlink(name, dir_fd=fd)
                except FileNotFoundError:
                    pass
                except IsADirectoryError:
                    print(f"unlink_beneath: {base}/{directory}/{name} is a directory: left alone")
            if os.listdir(fd):
                print(f"unlink_beneath: {base}/{directory} still holds {', '.join(sorted(os.listdir(fd)))}: kept")
                return 0
            now = os.stat(directory, dir_fd=base_fd, follow_symlinks=False)
            if (now.st_dev, now.st_ino) == (info.st_dev, info.st_ino) and stat.S_ISDIR(now.st_mode):
                # Renamed and replaced since? Then rmdir meets another name and fails or removes an
                # empty directory of the user's own; nothing of anyone else's.
                os.rmdir(directory, dir_fd=base_fd)
                print(f"unlink_beneath: removed {base}/{directory}")
        finally:
            os.close(fd)
    finally:
        os.close(base_fd)
    return 0


if __name__ == "__main__":
    sys.exit(main())
