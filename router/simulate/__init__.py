"""`labelrouter simulate`: the routing, gold and consensus rules over replayed crowd answers."""
