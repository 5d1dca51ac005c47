SELECT ss.staff_id, ss.school_id, ss.is_home
FROM staff_school ss
JOIN staff st ON st.staff_id = ss.staff_id
JOIN school s ON s.school_id = ss.school_id
WHERE st.is_active = 1
  AND s.is_active = 1
ORDER BY ss.staff_id, ss.school_id
