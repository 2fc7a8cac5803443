"""The four areas of the app, and its modals. Screens are thin: they compose widgets, bind
keys, and call services in workers."""
