-- The seed's customers, products and stock, from the `seed_params` temporary
-- table of the same transaction. Ids are md5(tag:kind:index) read as a UUID,
-- so the order chunks find a customer or product by its index alone.
INSERT INTO customers (id, name, email, created_at, updated_at)
SELECT md5(p.tag || ':c:' || k)::uuid,
       (ARRAY['Ada','Grace','Alan','Edsger','Barbara','Donald','Margaret','Ken',
              'Radia','Leslie','Frances','John','Hedy','Dennis','Sophie','Tim',
              'Katherine','Linus','Anita','Niklaus'])[1 + k % 20]
         || ' ' ||
       (ARRAY['Lovelace','Hopper','Turing','Dijkstra','Liskov','Knuth','Hamilton',
              'Thompson','Perlman','Lamport','Allen','Backus','Lamarr','Ritchie',
              'Wilson','Berners-Lee','Johnson','Torvalds','Borg','Wirth',
              'Kay','Hoare','Milner','Codd','Gray'])[1 + (k / 20) % 25],
       'customer.' || k || '.' || p.tag || '@example.com',
       p.start_at, p.start_at
FROM seed_params p, generate_series(0, p.customers - 1) AS k;

INSERT INTO products (id, sku, name, unit_price_minor, currency, created_at, updated_at)
SELECT md5(p.tag || ':p:' || j)::uuid,
       'SKU-' || upper(p.tag) || '-' || lpad(j::text, greatest(6, length(j::text)), '0'),
       (ARRAY['Walnut','Oak','Steel','Copper','Linen','Wool','Ceramic','Glass',
              'Bamboo','Marble','Cedar','Brass','Cotton','Leather','Slate',
              'Birch','Velvet','Granite','Cork','Teak'])[1 + j % 20]
         || ' ' ||
       (ARRAY['Desk Lamp','Coffee Mug','Notebook','Backpack','Chair','Kettle',
              'Headphones','Keyboard','Water Bottle','Blanket','Bookshelf',
              'Cutting Board','Wall Clock','Plant Pot','Tote Bag','Pen Set',
              'Serving Tray','Candle','Mirror','Rug','Desk Organiser','Vase',
              'Picture Frame','Stool','Coat Hook'])[1 + (j / 20) % 25],
       199 + (j * 7907) % 49800,
       'EUR', p.start_at, p.start_at
FROM seed_params p, generate_series(0, p.products - 1) AS j;

-- Historical orders did not reserve stock; live commands on the seeded
-- catalog have plenty to take.
INSERT INTO stock (product_id, available)
SELECT md5(p.tag || ':p:' || j)::uuid, 1000000000
FROM seed_params p, generate_series(0, p.products - 1) AS j;
