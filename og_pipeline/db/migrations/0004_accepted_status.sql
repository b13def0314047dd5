-- The subscription status Ometria last accepted for the contact, whatever the field's ID: the
-- baseline of the mass-drop check.
ALTER TABLE og.ometria_contacts ADD COLUMN status text;
