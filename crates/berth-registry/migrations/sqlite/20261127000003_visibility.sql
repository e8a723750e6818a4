-- Repository visibility, and the namespace (first path component) that owns
-- each repository, indexed so that a catalog page for one caller is a range
-- scan over the namespaces it may see plus the public repositories.
ALTER TABLE repositories ADD COLUMN public BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE repositories ADD COLUMN namespace TEXT NOT NULL DEFAULT '';
UPDATE repositories
   SET namespace = substr(name, 1, instr(name || '/', '/') - 1);
CREATE INDEX repositories_by_namespace ON repositories (namespace, name);
CREATE INDEX repositories_public ON repositories (public, name);
