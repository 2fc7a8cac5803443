"""Business rules: plain functions over plain data. Nothing here touches a database, a
network or a screen, so every rule is tested directly."""
