"""``python -m faasbus.gateway``: run the gateway process."""

from faasbus.gateway.server import main

if __name__ == "__main__":
    main()
