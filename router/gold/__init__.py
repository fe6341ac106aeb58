"""Gold items: ordinary items with a known answer kept in a separate table, served blind."""
