import gettext
import os
import sys

import six


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    with open(os.path.join(here, "templates", "base.html")) as page:
        busted = page.read().split("v=")[1].split('"')[0]
    german = gettext.translation(
        "whois", os.path.join(here, "locale"), languages=["de"], fallback=True
    )
    print("whois version %s from %s" % (busted, sys.prefix))
    print("six %s; %s" % (six.__version__, german.gettext("Hello")))


if __name__ == "__main__":
    main()
