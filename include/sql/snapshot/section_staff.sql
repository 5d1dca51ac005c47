-- Staff assignments to sections, active on the as-of date, for active staff.
SELECT sst.section_id, sst.staff_id, sst.staff_role, sst.start_date, sst.end_date
FROM section_staff sst
JOIN staff st ON st.staff_id = sst.staff_id
WHERE st.is_active = 1
  AND sst.start_date <= :as_of_date
  AND (sst.end_date IS NULL OR sst.end_date >= :as_of_date)
ORDER BY sst.section_id, sst.staff_id, sst.start_date
