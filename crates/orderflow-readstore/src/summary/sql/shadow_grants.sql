-- The live order_summary's grants as statements, to run on the table that
-- replaces it in a rebuild's swap (a new table has only its owner's).
SELECT format('GRANT %s ON public.order_summary TO %s', a.privilege_type,
              CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE quote_ident(r.rolname) END)
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace,
     aclexplode(c.relacl) a
LEFT JOIN pg_roles r ON r.oid = a.grantee
WHERE n.nspname = 'public' AND c.relname = 'order_summary' AND a.grantee <> c.relowner
