"""Test doubles. Everything here is FAKE: nothing in this package talks to hardware."""
